"""Readers that turn export files into canonical rows, with nothing lost and no raw ids kept."""
