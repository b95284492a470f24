"""The console's views and modal screens."""
