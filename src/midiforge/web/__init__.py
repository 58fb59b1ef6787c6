"""The web page to generate and listen."""
