"""The engines ws_api runs; mpsv3 watches this folder and restarts ws_api when it changes."""
