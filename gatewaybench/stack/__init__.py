"""The system under test: PostgreSQL, the app under a server, nginx; each a supervised process."""
