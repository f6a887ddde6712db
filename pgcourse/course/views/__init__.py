"""What the course shows: ``plotting`` (curves, bands, the lessons' figures), ``render`` (GIFs), ``widgets``."""
