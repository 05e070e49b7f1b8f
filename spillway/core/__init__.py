"""Shared leaf records and codecs: imports no other project package; every package may import it."""
