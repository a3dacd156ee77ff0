"""The boundary with the cloud: the ECS API client (three calls), how its answers are
read and classified, authentication (token, AK/SK signing, IAM), endpoints and
regions, proxies and CAs, reachability, and the retry policy. Nothing above this
package sees an HTTP library or a raw answer."""
