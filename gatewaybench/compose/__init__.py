"""The Docker backend: docker-compose.yml and `run --backend compose`, from one service model."""
