"""The national-interface gateway: an HTTPS endpoint speaking the national medical-security
platform's JSON envelope (定点医药机构接口), translated into calls on the binding and payment
services made as the gateway's own principal, acting for the institution that called it."""
