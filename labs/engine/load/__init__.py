"""Driving load (Locust) and scraping the services while it runs."""
