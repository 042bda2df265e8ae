module example.invalid/vcerts/syncer-front

go 1.26
