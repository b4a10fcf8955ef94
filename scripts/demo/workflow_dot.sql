-- workflow_dot.sql: the workflow as a Graphviz graph, in one query: a node
-- "id task" per job coloured by status, an edge parent -> child per
-- dependency (scripts/demo.sh pipes it to dot).

SELECT concat_ws(E'\n',
    'digraph procq {',
    '  rankdir=LR;',
    '  label="green: succeeded   red: failed   grey: cancelled   yellow: todo or doing";',
    '  fontname="Helvetica"; fontsize=11;',
    '  node [shape=box, style="rounded,filled", fontname="Helvetica"];',
    (SELECT string_agg(format('  j%s [label="%s %s", fillcolor="%s"];',
                              id, id, replace(task, '"', '\"'),
                              CASE status WHEN 'succeeded' THEN 'palegreen'
                                          WHEN 'failed' THEN 'tomato'
                                          WHEN 'cancelled' THEN 'lightgrey'
                                          ELSE 'yellow' END),
                       E'\n' ORDER BY id)
       FROM procq.jobs),
    (SELECT string_agg(format('  j%s -> j%s;', depends_on, job_id), E'\n'
                       ORDER BY depends_on, job_id)
       FROM procq.job_dependencies),
    '}');
