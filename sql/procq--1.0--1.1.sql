-- procq 1.0 -> 1.1 (ALTER EXTENSION procq UPDATE TO '1.1').
--
-- Brings an installed 1.0 to the catalog of a fresh 1.1 install
-- (procq--1.1.sql); test/t/004_upgrade.pl checks that both are equal and
-- that the jobs survive.  Changes are grouped by the feature that needs them.

\echo Use "ALTER EXTENSION procq UPDATE TO '1.1'" to load this file. \quit
