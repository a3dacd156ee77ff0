"""The boundary with the cloud: the interface the engine uses (`interface.Cloud`), the
ECS API client that implements it (three calls), how its answers are read and
classified, authentication (token, AK/SK signing, IAM), endpoints and regions,
proxies and CAs, reachability, and the retry policy. Nothing above this package sees
an HTTP library or a raw answer. `fake.InMemoryCloud` implements the same interface
on the simulator's rules, in memory, for the runner's unit tests."""
