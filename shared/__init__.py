"""gongji's domain: family mutual aid of employee medical-insurance personal accounts.

Plain dataclasses and functions, policy as data. Nothing here knows gRPC or SQL;
the services adapt these rules to their transports and databases.
"""
