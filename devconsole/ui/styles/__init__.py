"""The console's Textual CSS, one sheet per view family, theme variables only."""
