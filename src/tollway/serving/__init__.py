"""Running tollway as a server: uvicorn, workers, start-up, slow clients and graceful shutdown."""
