"""The dashboard: a web page that shows the engines' live ticks from ws_api's WebSocket feed."""
