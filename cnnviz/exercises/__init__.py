"""Exercises that check the answer: five kinds drawn from a seed, a teacher's sets read from TOML files,
and the checking of a student's typed answer with the worked explanation."""
