"""The Durable Functions HTTP management API over our client, and what serves it."""
