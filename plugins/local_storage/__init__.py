"""Local-filesystem storage: content-addressed objects under the workspace.

Layout: ``<root>/<digest[:2]>/<digest[2:]><suffix>``. A write goes to ``<root>/.tmp/`` first
and is renamed into place, so an object is either whole or absent. Digests are BLAKE3
(cryptographic, multi-threaded, several GB/s), checked on every read.

The storage interface is documented in ``docs/storage.md``; the S3 backend in
``tether.contrib.s3`` implements the same methods.

Modules:

- ``storage``: ``LocalStorage``, the backend.
- ``files``: file helpers shared with the S3 backend and the snapshot stage (``hash_file``,
  ``blake3_hasher``, ``safe_join``, ``digest_in_key``, ``iter_leftovers``, ``fsync_path``).

This module holds only the hook, so loading the plugin stays cheap.
"""

from tether import hookimpl


@hookimpl
def tether_add_backends(backends):
    from .storage import LocalStorage

    backends.add(LocalStorage)
