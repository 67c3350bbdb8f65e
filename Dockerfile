# The service image; docker-compose.yml runs it with PostgreSQL 15 and Redis 7.
FROM python:3.11-slim
WORKDIR /app
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
COPY pyproject.toml README.md ./
COPY rescue ./rescue
COPY geo ./geo
COPY dispatch ./dispatch
COPY volunteers ./volunteers
RUN pip install --no-cache-dir .
EXPOSE 8080
ENV RESCUE_HOST=0.0.0.0 RESCUE_PORT=8080
CMD ["python", "-m", "rescue", "demo", "run"]
