"""The runner of the tests/deploy checks: every module-level test_* function, each run
whatever the others did, a line per check and a last line `N passed, N failed`."""
import traceback


def run(namespace):
    """Runs the test_* callables of \\p namespace (a module's globals()) in order.
    @returns the exit status: 0 when every check passed."""
    tests = [(k, v) for k, v in namespace.items() if k.startswith("test_") and callable(v)]
    passed = failed = 0
    for name, fn in tests:
        try:
            fn()
        except Exception as e:  # noqa: BLE001 - report every failure, run every check
            failed += 1
            print(f"FAIL {name}: {e}")
            if not isinstance(e, AssertionError):
                traceback.print_exc()
        else:
            passed += 1
            print(f"ok   {name}")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0
