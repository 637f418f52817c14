"""Exercises: a learner's edit graded against the lab's own load."""
