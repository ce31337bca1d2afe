"""A made-up third platform for the plug-in test: a JSON forum API, its replay server and collector.

Nothing outside this package and the test that registers it knows the forum exists.
"""
