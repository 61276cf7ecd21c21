"""feastline's HTTP service: app factory, settings, routers, error mapping, the offline engine, the CLI."""

# Imported before Feast on purpose: `import feast` sets PROMETHEUS_MULTIPROC_DIR, which would make
# prometheus_client keep our metrics in mmap'd files (slower on every observation). prometheus_client
# picks its value store when first imported, so importing it first keeps our metrics in memory.
import prometheus_client  # noqa: F401
