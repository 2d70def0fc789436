"""Rendering results for people and machines: the console, JUnit XML, GitHub step summaries, and the
leaderboard pages. Nothing here decides anything: it renders typed results the pipelines produced."""
