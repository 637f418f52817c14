"""A run's results on disk and on the terminal: JSON, Markdown, HTML, plots, JUnit."""
