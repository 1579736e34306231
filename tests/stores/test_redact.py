"""`redact`: what log lines, banners and error messages show of a DSN or store URL. Every password
form asyncpg reads is masked; everything else stays as written."""

from __future__ import annotations

import pytest

from asynkron_durable.errors import StoreError
from asynkron_durable.stores import redact, store_from_url


@pytest.mark.parametrize(
    ("dsn", "shown"),
    [
        ("postgresql://app:s3cret@db:5432/orders", "postgresql://app:***@db:5432/orders"),
        ("postgresql://app:p%40ss:w@rd@db/orders", "postgresql://app:***@db/orders"),
        ("postgresql://app@db/orders?password=s3cret", "postgresql://app@db/orders?password=***"),
        (
            "postgres://app@db/orders?sslmode=require&password=s3cret&schema=shop",
            "postgres://app@db/orders?sslmode=require&password=***&schema=shop",
        ),
        (
            "postgresql://app:one@db/orders?password=two&sslpassword=three",
            "postgresql://app:***@db/orders?password=***&sslpassword=***",
        ),
        ("postgresql://app@db/orders?PASSWORD=s3cret", "postgresql://app@db/orders?PASSWORD=***"),
        ("postgresql://app@db/orders?pass%77ord=s3cret", "postgresql://app@db/orders?pass%77ord=***"),
        ("host=db user=app password=s3cret dbname=orders", "host=db user=app password=*** dbname=orders"),
        ("host=db password = 's3 cr\\'et' dbname=orders", "host=db password=*** dbname=orders"),
        ("host=db sslpassword=s3cret", "host=db sslpassword=***"),
    ],
)
def test_every_password_form_is_masked(dsn: str, shown: str) -> None:
    assert redact(dsn) == shown


@pytest.mark.parametrize(
    "dsn",
    [
        "postgresql://app@db:5432/orders?schema=shop&sslmode=require",
        "postgresql://db/orders?passfile=/home/app/.pgpass&application_name=password",
        "postgresql://app@db/orders?password",  # a key without a value holds no secret
        "sqlite:///./durable.db",
        "memory://",
        "host=db user=app",
    ],
)
def test_urls_without_a_password_are_left_as_written(dsn: str) -> None:
    assert redact(dsn) == dsn


def test_a_dsn_that_cannot_be_parsed_is_not_shown_at_all() -> None:
    assert redact("postgresql://app:s3cret@[db/orders") == "<unparseable DSN>"


async def test_a_store_error_names_the_dsn_without_its_passwords() -> None:
    store = store_from_url("postgresql://app:in-userinfo@127.0.0.1:1/db?password=in-query&schema=shop")
    with pytest.raises(StoreError) as caught:  # nothing listens on port 1
        await store.open()
    message = str(caught.value)
    assert "postgresql://app:***@127.0.0.1:1/db?password=***" in message
    assert "in-userinfo" not in message and "in-query" not in message


@pytest.mark.parametrize("url", ["postgresq://app:s3cret@db/x", "app:s3cret@db/x"])
def test_a_store_url_that_is_refused_is_named_without_its_password(url: str) -> None:
    with pytest.raises(ValueError) as refused:
        store_from_url(url)
    assert "s3cret" not in str(refused.value)
