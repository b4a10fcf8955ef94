-- authz_handlers.sql: registering and removing handlers is an
-- administrator's act.  The capability is INSERT, UPDATE and DELETE on
-- procq.handlers; register_handler and unregister_handler refuse (42501)
-- without it, even with EXECUTE on every function (1.0's README advice),
-- so an ordinary role cannot squat a task name.  A trigger on
-- procq.handlers refuses a registered_by whose privileges the current user
-- does not have (so direct DML cannot forge it) and a shell handler from a
-- non-superuser; replacing or removing a handler needs the privileges of
-- its registered_by.
SET client_min_messages = warning;
DROP EXTENSION IF EXISTS procq CASCADE;
CREATE EXTENSION procq;
DROP ROLE IF EXISTS regress_hnd_app, regress_hnd_admin, regress_hnd_admin2;
RESET client_min_messages;
\pset null '(null)'

CREATE ROLE regress_hnd_app;
CREATE ROLE regress_hnd_admin;
CREATE ROLE regress_hnd_admin2;
GRANT USAGE ON SCHEMA procq TO regress_hnd_app, regress_hnd_admin, regress_hnd_admin2;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA procq TO regress_hnd_app, regress_hnd_admin, regress_hnd_admin2;
GRANT SELECT, INSERT, UPDATE, DELETE ON procq.handlers TO regress_hnd_admin, regress_hnd_admin2;

-- an ordinary role, even with EXECUTE on everything, cannot register
SET ROLE regress_hnd_app;
SELECT procq.register_handler('invoice', 'sql', 'SELECT 1');
SELECT procq.unregister_handler('invoice');
RESET ROLE;
SELECT count(*) AS handlers FROM procq.handlers;

-- the administrator can; another administrator cannot take it over
SET ROLE regress_hnd_admin;
SELECT procq.register_handler('invoice', 'sql', 'SELECT $2');
SELECT task, kind, command, registered_by FROM procq.handlers;
RESET ROLE;
SET ROLE regress_hnd_admin2;
SELECT procq.register_handler('invoice', 'sql', 'SELECT 2');
SELECT procq.unregister_handler('invoice');
-- nor through the table
UPDATE procq.handlers SET command = 'SELECT 3' WHERE task = 'invoice';
DELETE FROM procq.handlers WHERE task = 'invoice';
-- nor forge a registrant, nor register a shell handler
INSERT INTO procq.handlers (task, kind, command, registered_by)
    VALUES ('forged', 'sql', 'SELECT 1', 'regress_hnd_admin');
INSERT INTO procq.handlers (task, kind, command, registered_by)
    VALUES ('forged', 'sql', 'SELECT 1', 'postgres');
INSERT INTO procq.handlers (task, kind, command, registered_by)
    VALUES ('sh', 'shell', '/bin/true', 'regress_hnd_admin2');
SELECT procq.register_handler('sh', 'shell', '/bin/true');
-- its own, through the table: checked like register_handler's
INSERT INTO procq.handlers (task, kind, command, registered_by)
    VALUES ('mine', 'sql', 'SELECT 1; SELECT 2', 'regress_hnd_admin2');
INSERT INTO procq.handlers (task, kind, command, registered_by)
    VALUES ('mine', 'sql', 'SELECT 1', 'regress_hnd_admin2');
RESET ROLE;
SELECT task, kind, command, registered_by FROM procq.handlers ORDER BY task;

-- the first administrator (and a superuser) may change and remove its own
SET ROLE regress_hnd_admin;
SELECT procq.register_handler('invoice', 'sql', 'SELECT $2 + 1');
SELECT procq.unregister_handler('invoice');
RESET ROLE;
SELECT procq.unregister_handler('mine');
SELECT count(*) AS handlers FROM procq.handlers;

DROP OWNED BY regress_hnd_app, regress_hnd_admin, regress_hnd_admin2;
DROP ROLE regress_hnd_app, regress_hnd_admin, regress_hnd_admin2;
