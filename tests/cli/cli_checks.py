"""What the tests/cli scripts share: check() records a failed expectation and goes on, so that
one run reports every failure; a script exits 1 when FAILURES is not empty at the end."""

FAILURES = []


def check(condition, message):
    print(("ok: " if condition else "FAIL: ") + message, flush=True)
    if not condition:
        FAILURES.append(message)
