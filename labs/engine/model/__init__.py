"""What a lab is, as data, and how its checks are judged."""
