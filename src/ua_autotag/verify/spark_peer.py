"""A local Spark Connect gRPC server that records what every request carries.

Stands in for a Spark Connect endpoint (open-source Spark, a Databricks cluster or
serverless): it implements ``SparkConnectService`` from the stubs pyspark ships
(``pyspark.sql.connect.proto.base_pb2_grpc``) and answers just enough for a real
client to run ``spark.range(n).collect()``, ``spark.conf.get/set``, ``spark.version``
and ``spark.addArtifacts``: ``Config``, ``AnalyzePlan``, ``ExecutePlan`` (schema, one
Arrow batch, ``result_complete``), ``ReleaseExecute``, ``ReleaseSession``,
``AddArtifacts``, ``ArtifactStatus``, plus ``Interrupt`` / ``ReattachExecute`` /
``FetchErrorDetails`` answered minimally.
Every request's ``client_type`` (where the client's user agent travels) and
``user_context.user_id`` are recorded.

grpc, pyarrow and pyspark are imported when a peer starts, never at import of this
module: ``ua-autotag verify`` imports it in environments without pyspark.
"""

from __future__ import annotations

import threading
import uuid
from concurrent import futures
from typing import Any, Callable, Dict, Iterator, List, NamedTuple, Optional, Tuple

__all__ = ["RecordedCall", "SparkConnectPeer"]


class RecordedCall(NamedTuple):
    """One request as the server received it."""

    method: str  # the RPC name: "ExecutePlan", "Config", ...
    client_type: str  # the client's user agent ("" when the client sent none)
    user_id: str
    session_id: str
    metadata: Dict[str, str]  # gRPC metadata (header) keys lower-cased, values as sent

    @property
    def user_agent(self) -> str:
        return self.client_type


def _range_of(plan: Any) -> Optional[range]:
    """The rows of a ``spark.range(...)`` plan, or None for any other plan."""
    relation = plan.root if plan.HasField("root") else None
    if relation is None or not relation.HasField("range"):
        return None
    spec = relation.range
    return range(spec.start, spec.end, spec.step or 1)


class SparkConnectPeer:
    """``with SparkConnectPeer() as peer: ... peer.url ... peer.user_agents()``.

    Binds 127.0.0.1 on a free port (``port=0``); ``peer.url`` is the Spark Connect
    connection string ``sc://127.0.0.1:PORT``. Thread-safe recording.

    ``tls=True`` serves TLS with a throw-away self-signed certificate for 127.0.0.1
    (made with the ``openssl`` command): for clients that only speak TLS, such as
    Databricks Connect's channel builder. Point gRPC at ``peer.ca_file`` through
    ``GRPC_DEFAULT_SSL_ROOTS_FILE_PATH`` before the process opens its first TLS
    channel; ``peer.https_url`` is the ``https://127.0.0.1:PORT`` "workspace" URL.
    """

    SPARK_VERSION = "4.0.0"
    DBR_VERSION = "16.1.x-scala2.12"  # answered where the protocol has the field (Databricks)

    def __init__(self, port: int = 0, tls: bool = False) -> None:
        self.calls: List[RecordedCall] = []
        self.conf: Dict[str, str] = {}
        self.tls = tls
        self.ca_file: Optional[str] = None
        self._tmp: Any = None
        self._requested_port = port
        self._lock = threading.Lock()
        self._server: Any = None
        self._port: Optional[int] = None
        self._server_session_id = str(uuid.uuid4())

    # -- lifecycle --------------------------------------------------------------------
    def start(self) -> SparkConnectPeer:
        import grpc
        from pyspark.sql.connect.proto import base_pb2_grpc

        servicer = _make_servicer(self, base_pb2_grpc.SparkConnectServiceServicer)
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        base_pb2_grpc.add_SparkConnectServiceServicer_to_server(  # type: ignore[no-untyped-call]
            servicer, server
        )
        address = f"127.0.0.1:{self._requested_port}"
        if self.tls:
            key, cert = self._make_certificate()
            credentials = grpc.ssl_server_credentials([(key, cert)])
            self._port = server.add_secure_port(address, credentials)
        else:
            self._port = server.add_insecure_port(address)
        server.start()
        self._server = server
        return self

    def _make_certificate(self) -> Tuple[bytes, bytes]:
        """A self-signed key and certificate for 127.0.0.1 / localhost."""
        import subprocess
        import tempfile
        from pathlib import Path

        self._tmp = tempfile.TemporaryDirectory(prefix="ua-autotag-spark-peer-")
        folder = Path(self._tmp.name)
        key, cert = folder / "key.pem", folder / "cert.pem"
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
             "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
             "-keyout", str(key), "-out", str(cert)],
            check=True, capture_output=True,
        )  # fmt: skip
        self.ca_file = str(cert)
        return key.read_bytes(), cert.read_bytes()

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop(grace=None)
            self._server = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> SparkConnectPeer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # -- reading ------------------------------------------------------------------------
    @property
    def port(self) -> int:
        assert self._port is not None, "peer not started"
        return self._port

    @property
    def url(self) -> str:
        """The connection string (``;use_ssl=true`` added for a TLS peer)."""
        suffix = "/;use_ssl=true" if self.tls else ""
        return f"sc://127.0.0.1:{self.port}{suffix}"

    @property
    def https_url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def requests(self) -> List[RecordedCall]:
        with self._lock:
            return list(self.calls)

    def user_agents(self, method: Optional[str] = None) -> List[str]:
        """The ``client_type`` of each request so far (optionally only RPC ``method``)."""
        with self._lock:
            return [c.client_type for c in self.calls if method is None or c.method == method]

    def clear(self) -> None:
        with self._lock:
            self.calls.clear()

    # -- recording (called from the servicer) ---------------------------------------------
    def _record(self, method: str, request: Any, context: Any) -> None:
        metadata = {
            k.lower(): v for k, v in (context.invocation_metadata() or ()) if isinstance(v, str)
        }
        call = RecordedCall(
            method,
            getattr(request, "client_type", ""),
            request.user_context.user_id if request.HasField("user_context") else "",
            getattr(request, "session_id", ""),
            metadata,
        )
        with self._lock:
            self.calls.append(call)


def _make_servicer(peer: SparkConnectPeer, base: type) -> Any:
    """A ``SparkConnectServiceServicer`` subclass answering for ``peer``."""
    import pyarrow as pa  # type: ignore[import-untyped]
    from pyspark.sql.connect.proto import base_pb2 as pb2
    from pyspark.sql.connect.proto import types_pb2

    server_side = peer._server_session_id

    def long_schema() -> Any:
        field = types_pb2.DataType.StructField(
            name="id",
            data_type=types_pb2.DataType(long=types_pb2.DataType.Long()),
            nullable=False,
        )
        return types_pb2.DataType(struct=types_pb2.DataType.Struct(fields=[field]))

    def arrow_batch(values: List[int]) -> bytes:
        table = pa.table({"id": pa.array(values, type=pa.int64())})
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
        return bytes(sink.getvalue().to_pybytes())

    class Servicer(base):  # type: ignore[misc, valid-type]
        def Config(self, request: Any, context: Any) -> Any:
            peer._record("Config", request, context)
            op = request.operation
            pairs: List[Any] = []
            kind = op.WhichOneof("op_type")
            with peer._lock:
                if kind == "set":
                    for p in op.set.pairs:
                        peer.conf[p.key] = p.value
                elif kind == "unset":
                    for key in op.unset.keys:
                        peer.conf.pop(key, None)
                elif kind in ("get", "get_option"):  # unset keys come back without a value
                    pairs = [
                        pb2.KeyValue(key=k, value=peer.conf[k])
                        if k in peer.conf
                        else pb2.KeyValue(key=k)
                        for k in getattr(op, kind).keys
                    ]
                elif kind == "get_with_default":
                    pairs = [
                        pb2.KeyValue(key=p.key, value=peer.conf.get(p.key, p.value))
                        for p in op.get_with_default.pairs
                    ]
                elif kind == "get_all":
                    pairs = [
                        pb2.KeyValue(key=k, value=v)
                        for k, v in peer.conf.items()
                        if k.startswith(op.get_all.prefix)
                    ]
                elif kind == "is_modifiable":
                    pairs = [pb2.KeyValue(key=k, value="true") for k in op.is_modifiable.keys]
            return pb2.ConfigResponse(
                session_id=request.session_id, server_side_session_id=server_side, pairs=pairs
            )

        def AnalyzePlan(self, request: Any, context: Any) -> Any:
            peer._record("AnalyzePlan", request, context)
            response = pb2.AnalyzePlanResponse(
                session_id=request.session_id, server_side_session_id=server_side
            )
            kind = request.WhichOneof("analyze")
            if kind == "spark_version":
                response.spark_version.version = peer.SPARK_VERSION
                if "dbr_version" in response.spark_version.DESCRIPTOR.fields_by_name:
                    response.spark_version.dbr_version = peer.DBR_VERSION
            elif kind == "schema":
                response.schema.schema.CopyFrom(long_schema())
            elif kind == "is_streaming":
                response.is_streaming.is_streaming = False
            elif kind == "is_local":
                response.is_local.is_local = False
            return response

        def ExecutePlan(self, request: Any, context: Any) -> Iterator[Any]:
            peer._record("ExecutePlan", request, context)
            operation_id = request.operation_id or str(uuid.uuid4())

            def response(**fields: Any) -> Any:
                return pb2.ExecutePlanResponse(
                    session_id=request.session_id,
                    server_side_session_id=server_side,
                    operation_id=operation_id,
                    response_id=str(uuid.uuid4()),
                    **fields,
                )

            rows = _range_of(request.plan)
            if rows is not None:
                yield response(schema=long_schema())
                values = list(rows)
                yield response(
                    arrow_batch=pb2.ExecutePlanResponse.ArrowBatch(
                        row_count=len(values), data=arrow_batch(values)
                    )
                )
            yield response(result_complete=pb2.ExecutePlanResponse.ResultComplete())

        def ReattachExecute(self, request: Any, context: Any) -> Iterator[Any]:
            peer._record("ReattachExecute", request, context)
            yield pb2.ExecutePlanResponse(
                session_id=request.session_id,
                server_side_session_id=server_side,
                operation_id=request.operation_id,
                response_id=str(uuid.uuid4()),
                result_complete=pb2.ExecutePlanResponse.ResultComplete(),
            )

        def ReleaseExecute(self, request: Any, context: Any) -> Any:
            peer._record("ReleaseExecute", request, context)
            return pb2.ReleaseExecuteResponse(
                session_id=request.session_id,
                server_side_session_id=server_side,
                operation_id=request.operation_id,
            )

        def AddArtifacts(self, request_iterator: Any, context: Any) -> Any:
            session_id = ""
            names: List[str] = []
            for request in request_iterator:  # one record per message of the stream
                peer._record("AddArtifacts", request, context)
                session_id = request.session_id
                kind = request.WhichOneof("payload")
                if kind == "batch":
                    names.extend(a.name for a in request.batch.artifacts)
                elif kind == "begin_chunk":
                    names.append(request.begin_chunk.name)
            summaries = [
                pb2.AddArtifactsResponse.ArtifactSummary(name=n, is_crc_successful=True)
                for n in names
            ]
            return pb2.AddArtifactsResponse(
                session_id=session_id, server_side_session_id=server_side, artifacts=summaries
            )

    # the calls answered with the session ids alone
    for method, response in (
        ("ReleaseSession", "ReleaseSessionResponse"),
        ("Interrupt", "InterruptResponse"),
        ("ArtifactStatus", "ArtifactStatusesResponse"),
        ("FetchErrorDetails", "FetchErrorDetailsResponse"),
    ):
        setattr(
            Servicer, method, _session_answer(peer, method, getattr(pb2, response), server_side)
        )
    return Servicer()


def _session_answer(
    peer: SparkConnectPeer, method: str, response: Any, server_side: str
) -> Callable[[Any, Any, Any], Any]:
    """A handler that records the call and answers with the session ids."""

    def handler(self: Any, request: Any, context: Any) -> Any:
        peer._record(method, request, context)
        return response(session_id=request.session_id, server_side_session_id=server_side)

    handler.__name__ = method
    return handler
