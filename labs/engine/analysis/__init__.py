"""Numbers from a run's raw records: requests, nginx's logs, orders."""
