# Turns a text file into a C source defining `const char <NAME>[]` (NUL-terminated), so the
# Lua library lives in a readable .lua file but ships inside the binary.
#   cmake -DIN=lib/risk.lua -DOUT=gen/risk_lua.c -DNAME=cs_risk_lua -P cmake/embed.cmake
file(READ ${IN} hex HEX)
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
file(WRITE ${OUT} "/* generated from ${IN} by cmake/embed.cmake: do not edit */\n"
                  "const char ${NAME}[] = {${bytes}0x00};\n")
