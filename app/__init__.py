"""gensessions: product generation sessions and their event logs, behind a REST API.

`create_app(config)` builds the Flask app: defaults, then the environment,
then `config` (a dict, e.g. {"DATABASE_URL": ":memory:"} for an embedded demo).
"""
import os

from flask import Flask

from .config import DEFAULTS, from_environment

__version__ = "0.1.0"


def create_app(config=None):
    """Create and configure an instance of the gensessions app."""
    config = config or {}
    # The instance folder is ./instance of the working directory, wherever the code is
    # installed (Flask's default would follow the package into a virtualenv).
    instance = config.get("INSTANCE_PATH") or os.environ.get("INSTANCE_PATH") or "instance"
    app = Flask(__name__, instance_path=os.path.abspath(instance),
                instance_relative_config=True)
    app.config.from_mapping(DEFAULTS)
    app.config.from_mapping(from_environment())
    app.config.from_mapping(config)

    from . import (api, auth, cli, errors, health, http, logs, openapi, purge, ratelimit,
                   security, ui)
    from .db import init_db
    from .envelope import Envelope
    from .streaming import init_streaming
    from .watch import init_watch

    logs.configure_logging()
    http.register_http(app)
    security.init_security(app)
    auth.init_auth(app)
    init_db(app)
    purge.init_purge(app)
    init_watch(app)
    init_streaming(app)
    ratelimit.init_rate_limit(app)
    app.register_blueprint(health.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(openapi.bp)
    app.register_blueprint(openapi.docs_bp)
    app.register_blueprint(ui.bp)
    errors.register_error_handlers(app)
    cli.register_cli(app)
    # Request id, security headers and the access line, around everything the app answers.
    app.wsgi_app = Envelope(app.wsgi_app)
    return app
