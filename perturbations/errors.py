"""The project's one error type for user mistakes.

It lives in the lowest, dependency-free layer so that ``perturbations`` stays
importable without torch; ``impossible_lms.errors`` re-exports the same class.
Anything a researcher can fix (a wrong path, a bad flag, a mismatched manifest)
raises :class:`ILMError` with a one-line message. The CLI prints that line and
exits non-zero; every other exception is a bug and keeps its traceback.
"""


class ILMError(Exception):
    """An error caused by user input, printed by the CLI as one line."""

    exit_code = 1


def did_you_mean(name: str, choices) -> str:
    """`` (did you mean 'x'?)`` for the closest of ``choices``, or ``""``: the hint every
    unknown-name error carries."""
    import difflib

    near = difflib.get_close_matches(name, list(choices), n=1)
    return f" (did you mean {near[0]!r}?)" if near else ""
