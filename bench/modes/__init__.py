"""One module per benchmark mode; each exposes `async def run(...) -> dict` of figures."""
