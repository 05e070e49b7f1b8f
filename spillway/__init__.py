"""Spillway: the composition root (``spillway.main``), the client package
(``spillway.client``), the render-package catalog (``spillway.packages``) and the
shared leaf records and codecs (``spillway.core``) that every other package may import."""
