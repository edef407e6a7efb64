# The broker stream's consumer is added by the live-stream work (issue #10).
websocket_urlpatterns: list = []
