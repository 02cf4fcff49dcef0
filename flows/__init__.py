"""Prefect flows: thin, one-line tasks over ``circulate.*``."""
