"""The Exercises page: pick a set, answer one exercise at a time, see it checked and explained."""
