"""The one exception type for problems a user can fix (bad file, missing model, wrong option).

Its message is a single line a person can act on; the CLI prints it as `error: ...` and the
app shows it in a dialog. Anything else escaping the engine is a bug.
"""


class UserError(Exception):
    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))  # always one line


def require_format(document: dict, expected: str, what: str) -> dict:
    """The one check of a file header's or manifest's "format" field: every file kind the project
    writes (checkpoints, vocoders, corpora, manifests) names itself, and a reader refuses others."""
    if not isinstance(document, dict) or document.get("format") != expected:
        found = document.get("format") if isinstance(document, dict) else None
        raise UserError(f"{what} (format {found!r}, expected {expected!r})")
    return document
