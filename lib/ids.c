/* caresignal identifiers: hand-written matchers for the fixed formats of docs/contract/formats.md
 * (simpler and much faster than a regex engine for patterns this small). */
#include "caresignal/ids.h"

const char *const cs_id_kind_names[CS_ID_KIND_COUNT] = {"location", "ods", "gss",
                                                        "event_ref"};

static int cs_is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static int cs_is_upper_alnum(char c)
{
    return cs_is_digit(c) || (c >= 'A' && c <= 'Z');
}

static int cs_all(const char *s, size_t len, int (*pred)(char))
{
    for (size_t i = 0; i < len; i++)
        if (!pred(s[i]))
            return 0;
    return 1;
}

static int cs_is_ref_char(char c)
{
    return cs_is_upper_alnum(c) || (c >= 'a' && c <= 'z') || c == '.' || c == '_' ||
           c == '/' || c == '-';
}

int cs_id_valid(cs_id_kind_t kind, const char *s, size_t len)
{
    switch (kind) {
    case CS_ID_LOCATION:
        if (len >= 11 && len <= 13 && s[0] == '1' && s[1] == '-')
            return cs_all(s + 2, len - 2, cs_is_digit);
        return len == 5 && cs_all(s, len, cs_is_upper_alnum);
    case CS_ID_ODS:
        return len >= 3 && len <= 6 && cs_all(s, len, cs_is_upper_alnum);
    case CS_ID_GSS:
        return len == 9 && s[0] == 'E' &&
               ((s[1] == '0' && s[2] >= '6' && s[2] <= '9') ||
                (s[1] == '1' && s[2] == '0')) &&
               cs_all(s + 3, 6, cs_is_digit);
    case CS_ID_EVENT_REF:
        return len >= 1 && len <= 64 && cs_all(s, len, cs_is_ref_char);
    default:
        return 0;
    }
}
