-- Run once by the postgres image on an empty data directory
-- (mounted into /docker-entrypoint-initdb.d by docker-compose.yml).
-- One database per service.
CREATE DATABASE gongji_binding;
CREATE DATABASE gongji_payment;
CREATE DATABASE gongji_payment_west;
CREATE DATABASE gongji_gateway;
