-- messages_client_id leads with client_id. A commit of many sends then
-- writes their entries on a few pages when client IDs sort in the order
-- they are made, as the web app's and the load tool's do
-- (docs/protocol.md). Keyed by conversation and sender first, the index
-- took a page of its own for every sender of the batch, and the group
-- commit spent a quarter to a third of its time on them (target 6 in
-- docs/benchmarks.md). Which sends conflict is unchanged: the same three
-- columns make a send unique.
DROP INDEX messages_client_id;
CREATE UNIQUE INDEX messages_client_id ON messages (client_id, conv_id, sender_id) WHERE client_id <> '';
