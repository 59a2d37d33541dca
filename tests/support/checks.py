"""What the Python tests share: the agent's five event types in order, and check(), which
prints each assertion as it goes and keeps the failed ones for the exit status.

    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
    from checks import FIVE, check, failures  # noqa: E402
    ...
    sys.exit(1 if failures else 0)
"""
import sys

FIVE = ["agent_started", "agent_thinking", "tool_executing", "tool_completed", "agent_completed"]

failures = []


def check(condition, what):
    """Records one assertion; a failed one fails the test at its end, the rest still run."""
    print(("ok    " if condition else "FAIL  ") + what, flush=True)
    if not condition:
        failures.append(what)
    return bool(condition)


def require(condition, what):
    """An assertion the rest of the test depends on: a failure ends the test at once."""
    if not check(condition, what):
        sys.exit(1)

