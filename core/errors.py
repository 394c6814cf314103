"""The one exception type for problems a user can fix (bad file, missing model, wrong option).

Its message is a single line a person can act on; the CLI prints it as `error: ...` and the
app shows it in a dialog. Anything else escaping the engine is a bug.
"""


class UserError(Exception):
    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))  # always one line
