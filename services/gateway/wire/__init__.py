"""The national interface's wire format, as pure functions: no HTTP, no gRPC, no SQL.

- ``money``: decimal yuan with two places on the wire, int fen inside, converted exactly;
- ``envelope``: the request envelope a HIS sends (``infno``, ``msgid``, ``input`` …) parsed and
  checked, and the answer (``infcode``, ``inf_refmsgid``, ``output`` …) built and rendered;
- ``signatures``: the signed ``_api_*`` headers some provinces' gateways use instead of a
  client certificate.
"""
