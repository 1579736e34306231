"""The activity: greets one city."""


def main(name: str) -> str:
    return f"Hello {name}!"
