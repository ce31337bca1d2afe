"""leakwatch: follow the discourse about the November 2024 Sora leak on Reddit and Bluesky."""

__version__ = "0.1.0"
