"""Dashboard widgets, one per module, each with its own DEFAULT_CSS; the screens that arrange them are in tui.screens."""
