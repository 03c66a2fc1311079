"""`make run` and the tests' real parts: a Docker-free API Gateway front, moto server and a TrafficStars
sandbox, all on 127.0.0.1. Needs the dev requirements (moto, trustme, PyYAML); never deployed code."""
