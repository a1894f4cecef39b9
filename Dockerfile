FROM python:3.12-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 MDMPORTAL_VAR_DIR=/var/lib/mdmportal
WORKDIR /app
COPY pyproject.toml README.md ./
COPY mdmportal mdmportal
COPY dep_accounts dep_accounts
COPY templates templates
COPY static static
COPY manage.py gunicorn.conf.py ./
RUN pip install --no-cache-dir . && useradd --system portal && mkdir -p /var/lib/mdmportal \
    && chown portal /var/lib/mdmportal
USER portal
EXPOSE 8000
