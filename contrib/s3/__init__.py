"""S3-compatible object storage through fsspec/s3fs (extra ``s3``).

Objects live under ``s3://<bucket>/<prefix>/`` with the same content-addressed layout as
local storage (``<digest[:2]>/<digest[2:]><suffix>``, BLAKE3 digests). A chain selects it::

    storage: {plugin: s3, params: {url: "s3://my-bucket/tether", endpoint_url: "${S3_ENDPOINT}"}}

Credentials come from the usual AWS sources (environment, config files, instance roles)
unless ``key``/``secret`` are given (write them as ``${ENV}``; they are never printed).

Atomicity relies on S3 semantics: a PUT (single or multipart) makes an object visible
whole or not at all, and because the key names the content's digest, an object under its
final key is always complete. Streaming writers (the snapshot stage) write local temp
files under ``<workspace>/s3-tmp/`` and upload each one once it is complete. Interrupted
multipart uploads stay invisible; expire them with a bucket lifecycle rule.

Modules: ``storage`` holds ``S3Storage``; this module holds only the hook, so loading the
plugin stays cheap and works without the extra.
"""

from tether import hookimpl


@hookimpl
def tether_add_backends(backends):
    from .storage import S3Storage

    backends.add(S3Storage)
