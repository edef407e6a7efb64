"""The live stream: the market-data hub, the per-process relay and the WebSocket consumer.

hub (the deployment's one upstream connection, published once) → transport (Redis between
processes, memory inside one) → relay (one per web process: each message once, to the local
connections) → consumers (one per client socket, thin) and routing; daphne_socket is what
the consumer cannot ask daphne through ASGI; messages is the wire format.
"""
